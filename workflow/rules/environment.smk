rule environment:
    output:
        json=report(
            f"{RESULTS}/environment.json",
            category="Environment",
            caption="../report/environment.rst",
        ),
        config=report(
            f"{RESULTS}/config.yaml",
            category="Environment",
            caption="../report/config.rst",
        ),
    log:
        f"{RESULTS}/logs/environment.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("environment"),
    params:
        snakemake_version=snakemake.__version__,
        config=json.dumps(config),
    shell:
        "python -m storebench --log {log:q} environment"
        " --results-dir $(dirname {output.json:q}) --snakemake-version {params.snakemake_version}"
        " --out {output.json:q} --config-json {params.config:q} --config-out {output.config:q}"


rule format_env:
    output:
        f"{ENVS}/{{env}}/{storebench.formatenv.READY}",
    log:
        f"{RESULTS}/logs/envs/{{env}}.log",
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("environment"),
    params:
        envs=lambda wildcards, output: Path(output[0]).parent.parent,
    shell:
        "python -m storebench --log {log:q} env {wildcards.env} --envs {params.envs:q}"
