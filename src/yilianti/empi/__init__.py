"""Enterprise master patient index (EMPI): normalisation, matching rules, batch linkage."""
