"""Serving: the HTTP API and web page (FastAPI), qatune's and the Hugging Face request formats."""
