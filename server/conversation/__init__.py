"""One message's life: rules, policy, memory, the prompt and the reply."""
