"""Stage 2, the compiler: the planner turns (graph, feature, options, catalog) into a plan, the
builder turns a plan into sqlglot expressions, a dialect renders them for one engine (the one
home of that engine's quirks). Nothing here connects to a database."""
