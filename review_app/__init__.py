"""The review app: a Streamlit app over the project database, for domain experts."""
