rule tier_run:
    input:
        archive=get_sweep_archive(),
    output:
        tables=expand(
            f"{RESULTS}/tiers/{{{{tier}}}}/{{copied}}",
            copied=storebench.tiers.DECLARED,
        ),
    log:
        job=f"{RESULTS}/logs/tiers/{{tier}}.log",
        run=f"{RESULTS}/logs/tiers/{{tier}}.run.log",
    benchmark:
        f"{RESULTS}/benchmarks/tiers/{{tier}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("tier_run"),
    params:
        config=get_tier_config,
        spec=get_tier_spec,
        out=lambda wildcards: f"{RESULTS}/tiers/{wildcards.tier}",
        snakefile=workflow.main_snakefile,
    shell:
        "python -m storebench --log {log.job:q} tier-run --tier {wildcards.tier}"
        " --spec-json {params.spec} --config-json {params.config} --out {params.out:q}"
        " --cores {threads} --snakefile {params.snakefile:q} --run-log {log.run:q}"


rule tier_table:
    input:
        unpack(get_tier_tables),
        environment=rules.environment.output.json,
    output:
        csv=report(
            f"{RESULTS}/tables/tiers.csv",
            category="Tables",
            caption="../report/caption.rst",
            labels={"table": "tiers"},
        ),
        md=f"{RESULTS}/tables/tiers.md",
    log:
        f"{RESULTS}/logs/tables/tiers.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("table"),
    params:
        tiers=get_tier_table_args,
        caption=get_caption_of("tiers"),
    shell:
        "python -m storebench --log {log:q} tier-table {params.tiers}"
        " --csv {output.csv:q} --md {output.md:q}"
