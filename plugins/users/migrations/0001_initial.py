from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('firebase_uid', fields.CharField(unique=True, max_length=128)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('display_name', fields.CharField(null=True, max_length=100)),
                ('locale', fields.CharField(default='en', max_length=35)),
                ('timezone', fields.CharField(default='UTC', max_length=64)),
                ('units', fields.CharField(default='metric', max_length=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users_user', 'app': 'users', 'pk_attr': 'id', 'table_description': 'One row per Firebase user. The user-owned rows of every other family point here.'},
            bases=['Model'],
        ),
    ]
