"""Asking a collection of documents: extract their text (`extract`), cut it into passages the reader's
window holds (`passages`), retrieve passages for a question (`lexical` BM25, `dense` embeddings, fused
in `index`), and read them with a QA model into cited answers (`reader`)."""
