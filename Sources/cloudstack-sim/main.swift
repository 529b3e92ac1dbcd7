print("cloudstack-sim")
