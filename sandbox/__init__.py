"""The local provider server: speaks each protocol, renders real MP4s, keeps its own billing.
It imports nothing of reelflow's, so a client bug cannot hide behind the same bug here."""
