# OCNet reproduction on a CUDA GPU. Build (no GPU needed) and run:
#   docker build -t ocnet .
#   docker run --gpus all --ipc=host -v /path/to/cityscapes:/workspace/ocnet/dataset/cityscapes:ro \
#     -v "$PWD/pretrained_model:/workspace/ocnet/pretrained_model:ro" \
#     -v "$PWD/checkpoint:/workspace/ocnet/checkpoint" -v "$PWD/log:/workspace/ocnet/log" \
#     -v "$PWD/visualize:/workspace/ocnet/visualize" ocnet
# The base image's torch (2.9, CUDA 12.8) is used; requirements.txt's torch pin is for the CPU venv.
FROM pytorch/pytorch:2.9.0-cuda12.8-cudnn9-devel

# GPUs to compile the InPlace-ABN CUDA kernels for (no GPU is needed at build time).
ARG TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0+PTX"
# 1 = run the CPU test suite (without the slow end-to-end runs) during the build.
ARG RUN_TESTS=0

ENV TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    TORCH_EXTENSIONS_DIR=/opt/ocnet/torch_extensions \
    CUDA_HOME=/usr/local/cuda \
    PYTHON=python \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# A C++ compiler and ninja for the JIT build of the InPlace-ABN extension.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ ninja-build \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 ocnet \
    && mkdir -p /workspace/ocnet "$TORCH_EXTENSIONS_DIR" \
    && chown -R ocnet:ocnet /workspace/ocnet "$TORCH_EXTENSIONS_DIR"
WORKDIR /workspace/ocnet

COPY requirements.txt requirements-nodeps.txt requirements-dev.txt ./
RUN grep -v -E '^(torch|torchvision)==' requirements.txt > /tmp/requirements-notorch.txt \
    && pip install -r /tmp/requirements-notorch.txt \
    && pip install --no-deps -r requirements-nodeps.txt \
    && pip install -r requirements-dev.txt

COPY --chown=ocnet:ocnet . .
USER 1000

# Pre-build both InPlace-ABN extensions into $TORCH_EXTENSIONS_DIR (inside the image), then optionally
# run the CPU tests.
RUN python -c "from inplace_abn import backend; backend.load('cuda'); backend.load('cpp')" \
    && if [ "$RUN_TESTS" = "1" ]; then python -m pytest -q -m "not slow and not cuda" tests; fi

# Writes checkpoint/, log/ and visualize/ under /workspace/ocnet; mount a volume to keep them.
CMD ["sh", "run_asp_oc.sh"]
