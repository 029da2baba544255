# Sourced by scripts/setup.sh, build.sh and test.sh: which LibTorch lgd is built against.
#   LGD_TORCH=debian (default)  Debian's libtorch-dev 1.13 (CPU), tests with /usr/bin/python3
#   LGD_TORCH=pip               PyTorch from PyPI (scripts/requirements-pip.txt, a CUDA build)
#                               in the virtual environment $LGD_VENV (default .venv), lgd
#                               built against its LibTorch with CUDA, tests with its Python
# Sets LGD_TORCH, LGD_BUILD_DIR (default build, or build-pip), and for the pip leg LGD_VENV
# and LGD_VENV_PYTHON.
LGD_TORCH=${LGD_TORCH:-debian}
case "$LGD_TORCH" in
  debian) LGD_BUILD_DIR=${LGD_BUILD_DIR:-build} ;;
  pip)
    LGD_BUILD_DIR=${LGD_BUILD_DIR:-build-pip}
    LGD_VENV=$(realpath -m "${LGD_VENV:-.venv}")
    LGD_VENV_PYTHON=$LGD_VENV/bin/python
    ;;
  *) echo "LGD_TORCH=$LGD_TORCH: expected debian or pip" >&2; exit 2 ;;
esac
export LGD_TORCH LGD_BUILD_DIR
