"""avjax."""
