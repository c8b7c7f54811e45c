"""The labelling page: a local Streamlit page to name, merge, reject and forget faces.

``python -m visio_memoria_ros.ui`` serves ``app.py``; ``actions`` holds what the page does to
the memory store (testable without a browser); ``settings`` the start-time configuration.
"""
