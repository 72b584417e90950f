rule usage:
    input:
        store=rules.store.output.store,
        meta=DATASET["meta"],
        env=get_format_env,
    output:
        result=f"{RESULTS}/measurements/usage/{{format}}/{{n}}.json",
    log:
        f"{RESULTS}/logs/usage/{{format}}/{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/usage/{{format}}/{{n}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("usage"),
    params:
        spec=get_format_spec,
    shell:
        "python -m storebench --log {log:q} usage --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --store {input.store:q} --dataset-meta {input.meta:q}"
        " --result {output.result:q}"
