print("volumed")
