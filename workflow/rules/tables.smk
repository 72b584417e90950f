rule table:
    input:
        results=get_table_inputs,
        environment=rules.environment.output.json,
    output:
        csv=report(
            f"{RESULTS}/tables/{{table}}.csv",
            category="Tables",
            caption="../report/caption.rst",
            labels={"table": "{table}"},
        ),
        md=f"{RESULTS}/tables/{{table}}.md",
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/{{table}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("table"),
    params:
        layout=get_table_layout,
        columns=get_table_columns,
        stage=get_table_stage,
        caption=get_caption_of(),
    shell:
        "python -m storebench --log {log:q} table {params.layout} --csv {output.csv:q} --md {output.md:q}"
        " {params.stage} {input.results:q}"


rule noise:
    input:
        tables=expand(rules.table.output.csv, table=TIMING_TABLES),
        environment=rules.environment.output.json,
    output:
        csv=report(
            f"{RESULTS}/tables/noise.csv",
            category="Tables",
            caption="../report/caption.rst",
            labels={"table": "noise"},
        ),
        md=f"{RESULTS}/tables/noise.md",
    log:
        f"{RESULTS}/logs/tables/noise.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/noise.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("noise"),
    params:
        threshold=config["noise_threshold"],
        caption=get_caption_of("noise"),
    shell:
        "python -m storebench --log {log:q} noise --threshold {params.threshold}"
        " --csv {output.csv:q} --md {output.md:q} {input.tables:q}"


rule cost:
    input:
        benchmarks=get_cost_inputs(),
        environment=rules.environment.output.json,
    output:
        csv=report(
            f"{RESULTS}/tables/cost.csv",
            category="Tables",
            caption="../report/caption.rst",
            labels={"table": "cost"},
        ),
        md=f"{RESULTS}/tables/cost.md",
    log:
        f"{RESULTS}/logs/tables/cost.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("cost"),
    params:
        caption=get_caption_of("cost"),
    shell:
        "python -m storebench --log {log:q} cost --csv {output.csv:q} --md {output.md:q}"
        " {input.benchmarks:q}"


rule summary:
    input:
        unpack(get_summary_tables),
        environment=rules.environment.output.json,
    output:
        summary=report(
            f"{RESULTS}/tables/summary.md",
            category="Summary",
            caption="../report/caption.rst",
        ),
        verdict=VERDICT,
    log:
        f"{RESULTS}/logs/tables/summary.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("summary"),
    params:
        tables=get_figure_table_args,
        repeats=config["repeats"],
        caption=get_caption_of("summary"),
    shell:
        "python -m storebench --log {log:q} summary {params.tables} --repeats {params.repeats}"
        " --environment {input.environment:q} --out {output.summary:q}"
        " --verdict {output.verdict:q}"


rule publish:
    input:
        get_final_outputs(),
        config=rules.environment.output.config,
    output:
        html=f"{RESULTS}/report.html",
        zip=f"{RESULTS}/report.zip",
    log:
        f"{RESULTS}/logs/publish.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("publish"),
    params:
        snakemake=f"{shlex.quote(sys.executable)} -m snakemake --snakefile {shlex.quote(str(workflow.main_snakefile))} --nolock",
    shell:
        "({params.snakemake} --configfile {input.config:q} --report {output.html:q}"
        " && {params.snakemake} --configfile {input.config:q} --report {output.zip:q}) > {log:q} 2>&1"
