"""Pictures for people: heat maps, retrieval grids, training curves, a localisation video and
a self-contained HTML report (`eval_pictures.write_eval_pictures`, run by --mode=eval)."""
