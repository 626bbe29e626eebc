"""The Streamlit dashboard over the dbt marts (``peak dashboard``; see dashboard/README.md)."""
