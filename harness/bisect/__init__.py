"""`harness bisect`: the decision core, the loop and its state, git bisect, and its reports."""
