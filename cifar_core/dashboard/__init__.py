"""The Streamlit dashboard: the app, its pages (views/) and what they share (sidebar, caches, links, navigation).

The only part of the lab that imports Streamlit; nothing else imports it. `cifar-lab serve` runs app.py from the
installed package, `streamlit run app.py` from a checkout.
"""
