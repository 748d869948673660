#!/bin/sh
# Asterisk's configs cannot read the environment, and secrets live only there (.env): write them
# into the files the mounted configs #tryinclude, readable by Asterisk alone, then start Asterisk.
set -eu
: "${CALLCARD_AMI_SECRET:?set CALLCARD_AMI_SECRET in .env}"
: "${PHONE_PASSWORD:?set PHONE_PASSWORD in .env}"
user="${ASTERISK_USER:-asterisk}"
umask 077
printf 'secret = %s\n' "$CALLCARD_AMI_SECRET" > /etc/asterisk/manager_secret.conf
printf 'password = %s\n' "$PHONE_PASSWORD" > /etc/asterisk/pjsip_password.conf
chown "$user" /etc/asterisk/manager_secret.conf /etc/asterisk/pjsip_password.conf
exec asterisk -f -U "$user" -vvv
