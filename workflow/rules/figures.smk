rule figure:
    input:
        unpack(get_figure_tables),
    output:
        png=report(
            f"{RESULTS}/figures/{{figure}}.png",
            category="Figures",
            caption="../report/figure.rst",
        ),
        svg=f"{RESULTS}/figures/{{figure}}.svg",
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{figure}}.tsv"
    conda:
        ENV
    params:
        tables=get_figure_table_args,
    shell:
        "python -m storebench --log {log:q} figure {wildcards.figure} {params.tables}"
        " --out {output.png:q} {output.svg:q}"
