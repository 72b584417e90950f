rule size_run:
    input:
        archive=get_sweep_archive(),
    output:
        tables=expand(
            f"{RESULTS}/sizes/{{{{size}}}}/results/tables/{{table}}.csv",
            table=storebench.sweep.TABLES,
        ),
    log:
        job=f"{RESULTS}/logs/sizes/{{size}}.log",
        run=f"{RESULTS}/logs/sizes/{{size}}.run.log",
    benchmark:
        f"{RESULTS}/benchmarks/sizes/{{size}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("size_run"),
    params:
        config=get_sweep_config,
        work=get_size_work,
        snakefile=workflow.main_snakefile,
    shell:
        "python -m storebench --log {log.job:q} size-run --size {wildcards.size}"
        " --config-json {params.config} --work {params.work:q}"
        " --cores {threads} --snakefile {params.snakefile:q} --run-log {log.run:q}"


rule size_table:
    input:
        unpack(get_sweep_tables),
        environment=rules.environment.output.json,
    output:
        csv=report(
            f"{RESULTS}/tables/image_size.csv",
            category="Tables",
            caption="../report/caption.rst",
            labels={"table": "image_size"},
        ),
        md=f"{RESULTS}/tables/image_size.md",
    log:
        f"{RESULTS}/logs/tables/image_size.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("table"),
    params:
        tables=get_sweep_table_args,
        megabytes=SWEEP["megabytes"],
        caption=get_caption_of("image_size"),
    shell:
        "python -m storebench --log {log:q} size-table {params.tables} --megabytes {params.megabytes}"
        " --csv {output.csv:q} --md {output.md:q}"
