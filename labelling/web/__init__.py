"""Server-rendered pages: the project list, project pages, labelling and the dashboard."""
