rule environment:
    output:
        f"{RESULTS}/environment.json",
    log:
        f"{RESULTS}/logs/environment.log",
    conda:
        ENV
    params:
        snakemake_version=snakemake.__version__,
    shell:
        "python -m storebench --log {log:q} environment"
        " --results-dir $(dirname {output:q}) --snakemake-version {params.snakemake_version} --out {output:q}"
