"""Pooled features of pretrained image classifiers, for flows on embeddings (paper section 8).

>>> from flowood.features import extract_features, embed_dataset
>>> feats = extract_features(images_uint8_nchw, "efficientnet-lite0", size=96)   # (N, 1280) float32
>>> embed_dataset("fashionmnist-mini", "efficientnet-lite0", "train,test", "fmnist_lite0.npz", size=96)

See :mod:`flowood.features.extractors` for the registry and the preprocessing, :mod:`flowood.features.extract`
for batching and the cache, :mod:`flowood.features.embed` for the ``.npz`` format.
"""

from flowood.features.embed import EmbeddingBundle, embed_dataset, read_embeddings, write_embedding_split
from flowood.features.extract import (
    cached_features,
    content_key,
    extract_features,
    feature_cache_dir,
    resolve_device,
)
from flowood.features.extractors import (
    EXTRACTORS,
    ExtractorConfig,
    ExtractorSpec,
    FeatureExtractor,
    RandomCNN,
    available_extractors,
    get_spec,
    hub_checkpoint_path,
    load_extractor,
    resolve_extractor,
)
from flowood.features.settings import FeatureSettings

__all__ = [
    "EXTRACTORS",
    "EmbeddingBundle",
    "ExtractorConfig",
    "ExtractorSpec",
    "FeatureExtractor",
    "FeatureSettings",
    "RandomCNN",
    "available_extractors",
    "cached_features",
    "content_key",
    "embed_dataset",
    "extract_features",
    "feature_cache_dir",
    "get_spec",
    "hub_checkpoint_path",
    "load_extractor",
    "read_embeddings",
    "resolve_device",
    "resolve_extractor",
    "write_embedding_split",
]
