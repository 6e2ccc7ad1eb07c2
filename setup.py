from setuptools import find_packages, setup

setup(
    name="snip_tf",
    version="0.1.0",
    description="SNIP: single-shot network pruning at initialization for Keras 3 on TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["snip_tf", "snip_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "importlib_resources>=5.0",  # tfds needs it to build a data set (the Reber builder)
        "keras-tuner>=1.4",
        "tensorboard>=2.16",  # keras-tuner and the pruning summaries write TensorBoard logs
        "absl-py>=1.4",
        "ml-collections>=0.1.1",
        "numpy>=1.26",
        "numba>=0.60",  # the graph study's edge trainer (compiled loops over connections)
        "scikit-learn>=1.3",
        "scipy>=1.10",  # the studies' statistics (Spearman correlations)
        "networkx>=3.0",  # the graph study's random-graph architectures
        "h5py>=3.10",  # snip_tf.load_model reads the mask record from a .keras archive
        "matplotlib>=3.7",
    ],
    extras_require={
        "hub": ["keras-hub>=0.20"],  # tests run tiny keras-hub backbones built from explicit configs
        "dev": ["pytest>=7.4", "pytest-xdist>=3.3", "hypothesis>=6.80", "keras-hub>=0.20"],
    },
)
