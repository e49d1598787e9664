"""rtcdp-dagster: the data side of the Real-Time CDP with Adobe Campaign pattern."""
