
rule store:
    input:
        **DATASET,
    output:
        store=directory(f"{RESULTS}/stores/{{format}}/{{n}}"),
        result=f"{RESULTS}/measurements/store/{{format}}/{{n}}.json",
    log:
        f"{RESULTS}/logs/store/{{format}}/{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/store/{{format}}/{{n}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("store"),
        bench=1,
    params:
        spec=get_format_spec,
        repeats=config["repeats"],
        trash=TRASH,
        max_create_us=config["filesystem_probe"]["max_create_us"],
        max_wait_s=config["filesystem_probe"]["max_wait_s"],
    shell:
        "python -m storebench --log {log:q} store --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --images {input.images:q} --labels {input.labels:q}"
        " --repeats {params.repeats} --out {output.store:q} --result {output.result:q}"
        " --trash {params.trash:q} --max-create-us {params.max_create_us}"
        " --max-wait-s {params.max_wait_s}"


rule single:
    input:
        **DATASET,
    output:
        result=f"{RESULTS}/measurements/single/{{format}}.json",
    log:
        f"{RESULTS}/logs/single/{{format}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/single/{{format}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("single"),
        bench=1,
    params:
        spec=get_format_spec,
        repeats=config["repeats"],
        scratch=f"{RESULTS}/scratch",
    shell:
        "python -m storebench --log {log:q} single --format {wildcards.format} --spec {params.spec:q}"
        " --n 1 --images {input.images:q} --labels {input.labels:q}"
        " --repeats {params.repeats} --scratch {params.scratch:q}"
        " --result {output.result:q}"
