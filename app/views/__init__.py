"""The explorer's views: Viewer components that build their plots once and update them."""
