"""`streamlit run app.py` from a checkout. The dashboard ships inside the package (cifar_core/dashboard/app.py), so
that `cifar-lab serve` opens it wherever the lab is installed; this runs that script anew on every rerun."""

import runpy

runpy.run_module("cifar_core.dashboard.app", run_name="__main__")
