"""Getting permitted views to subscribers: delivery topics, cursors, pull and streams."""
