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
    shell:
        "python -m storebench --log {log:q} table {params.kind} --csv {output.csv:q} --md {output.md:q}"
        " {input:q}"
