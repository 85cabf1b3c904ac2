"""Reports from results: JUnit, the terminal summary, HTML, KCIDB, LAVA jobs, comparisons."""
