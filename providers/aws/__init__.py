"""Trials on AWS EC2. boto3 is imported only when a client is first made (the ``aws`` extra).

- ``ec2.AwsProvider``: launch (tagged look-up, then fail-over), batched poll, facts, terminate, list_owned.
- ``failover``: zones, regions, spot-then-on-demand, bounded by ``resources.launch_wait``.
- ``errors``: botocore's errors mapped to RetryableError / CapacityError / FatalProviderError.
- ``validate``: what only EC2 can tell about the sweep's resources, before money is reserved.
- ``pricing``: live on-demand (Price List API) and spot (spot price history) prices.
"""

from costtune.providers.aws.ec2 import AwsHandle, AwsProvider

__all__ = ["AwsHandle", "AwsProvider"]
