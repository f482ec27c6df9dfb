"""What the owner decides and is told: away mode and hours, drafts, notices, style, history."""
