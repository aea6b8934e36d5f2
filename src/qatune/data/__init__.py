"""Data in: SQuAD-format files and named sources, validated once; v2-style negatives; windows over contexts."""
