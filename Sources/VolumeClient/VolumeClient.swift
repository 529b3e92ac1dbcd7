// VolumeClient module.
