"""latentsim explorer: a Panel app served with `panel serve app`."""
