"""The thesis's reported results (Tables 5.1 and 5.2), for comparison beside ours."""

TABLE_5_1 = {
    "squares": {"ap": 1.00, "auc": 0.993},
    "tvpr": {"ap": 0.938, "auc": 0.696},
}

TABLE_5_2 = {
    "S1": {"ap": 0.216, "auc": 0.500, "distance": 0.784},
    "S2": {"ap": 0.821, "auc": 0.372, "distance": 0.220},
    "R1": {"ap": 0.864, "auc": 0.540, "distance": 0.084},
    "R2": {"ap": 0.286, "auc": 0.573, "distance": 0.656},
    "R3": {"ap": 0.347, "auc": 0.500, "distance": 0.591},
    "R4": {"ap": 0.000, "auc": 0.530, "distance": 0.938},
    "R5": {"ap": 0.000, "auc": 0.500, "distance": 0.938},
    "R6": {"ap": 0.482, "auc": 0.504, "distance": 0.456},
}
