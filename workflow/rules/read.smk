rule read:
    input:
        **DATASET,
        env=get_format_env,
        store=rules.store.output.store,
        reference=get_reference_store,
    output:
        result=f"{RESULTS}/measurements/read/{{format}}/{{n}}/{{cache}}-{{order}}.json",
    log:
        f"{RESULTS}/logs/read/{{format}}/{{n}}/{{cache}}-{{order}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/read/{{format}}/{{n}}/{{cache}}-{{order}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("read"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        rounds=get_round_args,
        seed=config["seed"],
        fingerprint=get_fingerprint,
    shell:
        "python -m storebench --log {log:q} read --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --images {input.images:q} --labels {input.labels:q}"
        " {params.paired} {params.rounds} --store {input.store:q}"
        " --reference-store {input.reference:q}"
        " --cache {wildcards.cache} --order {wildcards.order} --seed {params.seed}"
        " --result {output.result:q}"


rule round:
    input:
        **DATASET,
        stores=get_round_stores,
        history=get_round_history,
    output:
        result=f"{RESULTS}/measurements/round/r{{round}}.json",
    log:
        f"{RESULTS}/logs/round/r{{round}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/round/r{{round}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("round"),
        bench=1,
    params:
        config=get_round_config,
        floor=FLOOR,
        stores=f"{RESULTS}/stores",
        scratch=f"{RESULTS}/scratch/round",
        trash=TRASH,
        baseline=f"{RESULTS}/.filesystem-quiet.json",
        fingerprint=get_round_fingerprint,
    shell:
        "python -m storebench --log {log:q} round --round {wildcards.round}"
        " --config-json {params.config} --floor {params.floor}"
        " --images {input.images:q} --labels {input.labels:q} --stores {params.stores:q}"
        " --scratch {params.scratch:q} --trash {params.trash:q} --baseline {params.baseline:q}"
        " --result {output.result:q} {input.history:q}"


rule latency:
    input:
        **DATASET,
        env=get_format_env,
        store=get_latency_store,
        reference=get_latency_reference_store,
    output:
        result=f"{RESULTS}/measurements/latency/{{format}}.json",
    log:
        f"{RESULTS}/logs/latency/{{format}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/latency/{{format}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("latency"),
        bench=1,
    params:
        spec=get_format_spec,
        n=LATENCY_N,
        samples=config["latency_samples"],
        seed=config["seed"],
        fingerprint=get_fingerprint,
        floor=FLOOR,
        floor_spec=lambda wildcards: json.dumps(config["formats"][FLOOR]),
    shell:
        "python -m storebench --log {log:q} latency --format {wildcards.format}"
        " --spec {params.spec:q} --n {params.n} --images {input.images:q}"
        " --labels {input.labels:q} --store {input.store:q} --samples {params.samples}"
        " --reference-format {params.floor} --reference-spec {params.floor_spec:q}"
        " --reference-store {input.reference:q}"
        " --seed {params.seed} --result {output.result:q}"


rule parallel:
    input:
        **DATASET,
        env=get_format_env,
        store=rules.store.output.store,
        reference=get_reference_store,
    output:
        result=f"{RESULTS}/measurements/parallel/{{format}}/{{n}}/{{cache}}-p{{workers}}.json",
    log:
        f"{RESULTS}/logs/parallel/{{format}}/{{n}}/{{cache}}-p{{workers}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/parallel/{{format}}/{{n}}/{{cache}}-p{{workers}}.tsv"
    conda:
        ENV
    threads: get_bench_threads
    resources:
        **get_resources("parallel"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        seed=config["seed"],
        fingerprint=get_fingerprint,
    shell:
        "python -m storebench --log {log:q} parallel --format {wildcards.format}"
        " --spec {params.spec:q} --n {wildcards.n} --images {input.images:q}"
        " --labels {input.labels:q} {params.paired}"
        " --store {input.store:q} --reference-store {input.reference:q}"
        " --cache {wildcards.cache} --workers {wildcards.workers} --seed {params.seed}"
        " --result {output.result:q}"


rule dataloader:
    input:
        **DATASET,
        env=get_format_env,
        store=rules.store.output.store,
        reference=get_reference_store,
    output:
        result=f"{RESULTS}/measurements/dataloader/{{format}}/{{n}}/b{{batch}}-w{{num_workers}}.json",
    log:
        f"{RESULTS}/logs/dataloader/{{format}}/{{n}}/b{{batch}}-w{{num_workers}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataloader/{{format}}/{{n}}/b{{batch}}-w{{num_workers}}.tsv"
    conda:
        TORCH_ENV
    threads: get_bench_threads
    resources:
        **get_resources("dataloader"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        seed=config["seed"],
        fingerprint=get_fingerprint,
    shell:
        "python -m storebench --log {log:q} dataloader --format {wildcards.format}"
        " --spec {params.spec:q} --n {wildcards.n} --images {input.images:q}"
        " --labels {input.labels:q} {params.paired}"
        " --store {input.store:q} --reference-store {input.reference:q}"
        " --batch-size {wildcards.batch} --num-workers {wildcards.num_workers}"
        " --seed {params.seed} --result {output.result:q}"


rule training:
    input:
        **DATASET,
        env=get_format_env,
        store=rules.store.output.store,
        reference=get_reference_store,
    output:
        result=f"{RESULTS}/measurements/training/{{format}}/{{n}}/{{loader}}.json",
    log:
        f"{RESULTS}/logs/training/{{format}}/{{n}}/{{loader}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/training/{{format}}/{{n}}/{{loader}}.tsv"
    conda:
        TORCH_ENV
    threads: get_bench_threads
    resources:
        **get_resources("training"),
        bench=1,
    params:
        spec=get_format_spec,
        paired=get_paired_args,
        seed=config["seed"],
        batch_size=TRAINING["batch_size"],
        step_ms=storebench.training.step_ms(TRAINING),
        crop=TRAINING_CROP,
        target_au=TRAINING["target_au"],
        repeats=TRAINING["repeats"],
        fingerprint=get_fingerprint,
    shell:
        "python -m storebench --log {log:q} training --format {wildcards.format}"
        " --spec {params.spec:q} --n {wildcards.n} --images {input.images:q}"
        " --labels {input.labels:q} {params.paired} --repeats {params.repeats}"
        " --store {input.store:q} --reference-store {input.reference:q}"
        " --loader {wildcards.loader} --batch-size {params.batch_size}"
        " --step-ms {params.step_ms} {params.crop} --target-au {params.target_au}"
        " --seed {params.seed} --result {output.result:q}"
