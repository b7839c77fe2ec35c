"""The Recall workflow (`recall-{id}`): quarantine, trace, notice, follow, close."""
