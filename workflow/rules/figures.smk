rule figure:
    input:
        unpack(get_figure_tables),
        environment=rules.environment.output.json,
    output:
        png=report(
            f"{RESULTS}/figures/{{figure}}.png",
            category="Figures",
            subcategory=get_figure_topic,
            caption="../report/caption.rst",
            labels={"figure": "{figure}"},
        ),
        others=expand(
            f"{RESULTS}/figures/{{{{figure}}}}.{{ext}}",
            ext=[ext for ext in config["figure_formats"] if ext != "png"],
        ),
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{figure}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("figure"),
    params:
        tables=get_figure_table_args,
        order=" ".join(FORMATS),
        caption=get_figure_caption,
    shell:
        "python -m storebench --log {log:q} figure {wildcards.figure} {params.tables}"
        " --order {params.order} --out {output.png:q} {output.others:q}"
