"""Per-document curation: normalisation and exact hashes, MinHash/LSH, language ID and
quality rules (pure Python and NumPy; the Spark stage is :mod:`pipeline.spark.curate_stage`).
"""
