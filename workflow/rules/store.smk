
rule store:
    input:
        **DATASET,
        env=get_format_env,
    output:
        store=directory(f"{RESULTS}/stores/{{format}}/{{n}}"),
        result=f"{RESULTS}/measurements/store/{{format}}/{{n}}.json",
    log:
        f"{RESULTS}/logs/store/{{format}}/{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/store/{{format}}/{{n}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("store"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        rounds=get_round_args,
        seed=config["seed"],
        fingerprint=get_fingerprint,
        trash=TRASH,
        baseline=f"{RESULTS}/.filesystem-quiet.json",
        slow_factor=config["filesystem_probe"]["slow_factor"],
        max_wait_s=config["filesystem_probe"]["max_wait_s"],
    shell:
        "python -m storebench --log {log:q} store --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --images {input.images:q} --labels {input.labels:q}"
        " {params.paired} {params.rounds} --seed {params.seed} --out {output.store:q}"
        " --result {output.result:q}"
        " --trash {params.trash:q} --baseline {params.baseline:q}"
        " --slow-factor {params.slow_factor} --max-wait-s {params.max_wait_s}"


rule single:
    input:
        **DATASET,
        env=get_format_env,
    output:
        result=f"{RESULTS}/measurements/single/{{format}}.json",
    log:
        f"{RESULTS}/logs/single/{{format}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/single/{{format}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("single"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        seed=config["seed"],
        fingerprint=get_fingerprint,
        scratch=f"{RESULTS}/scratch",
    shell:
        "python -m storebench --log {log:q} single --format {wildcards.format} --spec {params.spec:q}"
        " --n 1 --images {input.images:q} --labels {input.labels:q}"
        " {params.paired} --seed {params.seed} --scratch {params.scratch:q}"
        " --result {output.result:q}"
