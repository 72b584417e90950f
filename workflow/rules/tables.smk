rule table:
    input:
        get_table_inputs,
    output:
        csv=f"{RESULTS}/tables/{{table}}.csv",
        md=f"{RESULTS}/tables/{{table}}.md",
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/{{table}}.tsv"
    conda:
        ENV
    params:
        kind=get_table_kind,
        columns=get_table_columns,
    shell:
        "python -m storebench --log {log:q} table {params.kind} --csv {output.csv:q} --md {output.md:q}"
        " {input:q}"


rule noise:
    input:
        expand(rules.table.output.csv, table=TIMING_TABLES),
    output:
        csv=f"{RESULTS}/tables/noise.csv",
        md=f"{RESULTS}/tables/noise.md",
    log:
        f"{RESULTS}/logs/tables/noise.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/noise.tsv"
    conda:
        ENV
    params:
        threshold=config["noise_threshold"],
        max_create_us=config["filesystem_probe"]["max_create_us"],
    shell:
        "python -m storebench --log {log:q} noise --threshold {params.threshold}"
        " --max-create-us {params.max_create_us}"
        " --csv {output.csv:q} --md {output.md:q} {input:q}"
