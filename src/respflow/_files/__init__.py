"""The files a response makes: fetching them from the container, storing them safely,
rewriting the links that point at them, and serving them to browsers."""
