"""What a message carries besides text: attachments downloaded, read and transcribed."""
