rule download:
    output:
        f"{RESULTS}/data/cifar-10-python.tar.gz",
    log:
        f"{RESULTS}/logs/download.log",
    benchmark:
        f"{RESULTS}/benchmarks/download.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("download"),
    params:
        url=config["cifar10"]["url"],
        md5=config["cifar10"]["md5"],
    shell:
        "python -m storebench --log {log:q} download --url {params.url:q} --md5 {params.md5}"
        " --out {output:q}"


rule extract:
    input:
        archive=get_archive_input(),
    output:
        directory(f"{RESULTS}/data/extracted"),
    log:
        f"{RESULTS}/logs/extract.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("extract"),
    params:
        md5=config["cifar10"]["md5"],
    shell:
        "python -m storebench --log {log:q} extract --archive {input.archive:q} --md5 {params.md5}"
        " --out {output:q}"


rule photos:
    output:
        directory(f"{RESULTS}/data/photos"),
    log:
        f"{RESULTS}/logs/photos.log",
    benchmark:
        f"{RESULTS}/benchmarks/photos.tsv"
    conda:
        PHOTOS_ENV
    threads: 1
    resources:
        **get_resources("dataset"),
    params:
        n=config["n_images"],
        size=" ".join(map(str, DATASET_SPEC.get("size") or [])),
        seed=config["seed"],
    shell:
        "python -m storebench --log {log:q} photos --out {output:q} --n {params.n}"
        " --size {params.size} --seed {params.seed}"


rule dataset:
    input:
        get_dataset_input(),
    output:
        **DATASET,
    log:
        f"{RESULTS}/logs/dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **get_resources("dataset"),
    params:
        n_images=config["n_images"],
        source=get_dataset_args,
        state=get_source_state,
    shell:
        "python -m storebench --log {log:q} dataset {params.source} --n-images {params.n_images}"
        " --images {output.images:q} --labels {output.labels:q}"
