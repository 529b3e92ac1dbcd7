// CloudStackSimulator module.
