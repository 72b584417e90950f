rule read:
    input:
        store=rules.store.output.store,
        images=rules.dataset.output.images,
        labels=rules.dataset.output.labels,
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
        bench=1,
    params:
        spec=get_format_spec,
        repeats=config["repeats"],
        seed=config["seed"],
    shell:
        "python -m storebench --log {log:q} read --format {wildcards.format} --spec {params.spec:q}"
        " --n {wildcards.n} --images {input.images:q} --labels {input.labels:q}"
        " --repeats {params.repeats} --store {input.store:q}"
        " --cache {wildcards.cache} --order {wildcards.order} --seed {params.seed}"
        " --result {output.result:q}"


rule latency:
    input:
        store=get_largest_store,
        images=rules.dataset.output.images,
        labels=rules.dataset.output.labels,
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
        bench=1,
    params:
        spec=get_format_spec,
        n=max(CUTOFFS),
        samples=config["latency_samples"],
        seed=config["seed"],
    shell:
        "python -m storebench --log {log:q} latency --format {wildcards.format}"
        " --spec {params.spec:q} --n {params.n} --images {input.images:q}"
        " --labels {input.labels:q} --store {input.store:q} --samples {params.samples}"
        " --seed {params.seed} --result {output.result:q}"
