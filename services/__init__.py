"""The business: one folder per domain, plus adapters (db, stripe, auth). Imports neither streamlit nor fastapi."""
