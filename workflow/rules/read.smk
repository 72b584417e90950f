rule read:
    input:
        store=rules.store.output.store,
        images=rules.dataset.output.images,
        labels=rules.dataset.output.labels,
    output:
        result=f"{RESULTS}/measurements/read/{{format}}/{{n}}.json",
    log:
        f"{RESULTS}/logs/read/{{format}}/{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/read/{{format}}/{{n}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        bench=1,
    params:
        spec=get_format_spec,
        repeats=config["repeats"],
    shell:
        "python -m storebench --log {log:q} read --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --images {input.images:q} --labels {input.labels:q}"
        " --repeats {params.repeats} --store {input.store:q}"
        " --result {output.result:q}"
