"""Studies: scripts that train models and reproduce a paper's headline or a question of pdekit's own."""
