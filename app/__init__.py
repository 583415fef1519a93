"""latentsim explorer: a Panel app served with `panel serve app` (or `latentsim view`),
and `app.explore(dataset)` inline in a notebook."""


def explore(*datasets, **options):
    """The explorer on xarray Datasets in memory; see app/notebook.py."""
    from app.notebook import explore as _explore  # Panel is imported only when used

    return _explore(*datasets, **options)
