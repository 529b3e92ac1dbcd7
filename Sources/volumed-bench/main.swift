print("volumed-bench")
